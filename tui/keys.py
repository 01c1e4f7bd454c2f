"""Every key of the terminal UI, in one table: a key means one thing wherever it works.

Each screen builds its bindings from here (`bindings("trials")`), the help dialog lists them
from here, and docs/tui.md prints this table (`markdown()`; a test keeps the page and the code
the same). The lower-case letters of the voting screens (a b t x w s u r) are verdicts and their
companions, and no other screen gives them another meaning: the keys that open a tool or change
a view on the browsing screens are capitals (A arena, T chat, V statistics, X x axis, R reload).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

# How a person reads Textual's key names
SHOWN = {"question_mark": "?", "colon": ":", "slash": "/", "escape": "esc", "enter": "⏎",
         "left_square_bracket": "[", "right_square_bracket": "]"}


@dataclass(frozen=True)
class Key:
    """One row of the table: the key(s), the action a screen runs for it, its footer word and
    what it does in a sentence. Where it works is read from SCREENS."""

    name: str       # the row's name in SCREENS
    keys: str       # Textual key names, comma-separated ("escape,q"); the first is shown
    action: str     # the action run: the screen's own action_<action>, or app.<action>
    label: str      # the footer's word
    does: str       # the help dialog's and the docs' sentence
    written: str = ""  # how the docs and the help write the key, when not from the keys
    builtin: bool = False  # Textual's own (the palette, Enter in a text box): listed, not bound

    def __post_init__(self) -> None:
        if not self.written:
            shown = " ".join(SHOWN.get(k, k) for k in self.keys.split(","))
            object.__setattr__(self, "written", shown)


KEYS: tuple[Key, ...] = (
    # everywhere
    Key("palette", "ctrl+p", "command_palette", "palette",
        "the command palette: every action of this screen, open an experiment or a trial",
        builtin=True),
    Key("help", "question_mark,f1", "app.help", "help",
        "the keys of the screen you are on (f1 also while typing)"),
    Key("sql", "colon", "app.sql", "SQL", "the SQL console (read-only)"),
    Key("back", "escape,q", "app.back", "back",
        "back (a reply is stopped and a filter cleared first); on the first screen it leaves "
        "the app; q does not work while you type"),
    Key("quit", "ctrl+q", "app.quit", "quit", "quit at once"),
    # moving: the same in every table and every scrolling text
    Key("down", "j", "cursor_down", "down", "down a row or a line", "j ↓"),
    Key("up", "k", "cursor_up", "up", "up a row or a line", "k ↑"),
    Key("left", "h", "cursor_left", "left", "left a column, or scroll left", "h ←"),
    Key("right", "l", "cursor_right", "right", "right a column, or scroll right", "l →"),
    Key("top", "g", "scroll_top", "top", "to the first row, or the top", "g home"),
    Key("bottom", "G", "scroll_bottom", "bottom", "to the last row, or the end", "G end"),
    Key("page_down", "ctrl+d", "page_down", "page down", "a page down", "ctrl+d pgdn"),
    Key("page_up", "ctrl+u", "page_up", "page up", "a page up", "ctrl+u pgup"),
    Key("enter", "enter", "open", "open",
        "the screen's main action: open the row under the cursor, run the query, send the "
        "message, write the next one once you have voted, make the review"),
    # browsing the results
    Key("reload", "R", "reload", "reload",
        "read the store again now (screens refresh by themselves while something runs)"),
    Key("select", "space", "select", "select", "select the trial to compare (● marks it)"),
    Key("compare", "c", "compare", "compare", "compare the selected trials (or the five best)"),
    Key("sort", "o", "sort", "order",
        "order by the cursor's column, again to reverse (a click on a title too)"),
    Key("filter", "slash", "filter", "filter",
        "filter the rows: state=complete lr<1e-3 lora (⏎ applies, esc clears)"),
    Key("copy", "y", "copy", "copy", "copy the cell under the cursor (OSC 52)"),
    Key("vote", "v", "review('vote')", "review",
        "vote in the experiment's newest blind review (or make one)"),
    Key("new_review", "n", "review('new')", "new review",
        "a new blind review: pick models and prompts; the outputs are generated"),
    Key("statistics", "V", "statistics", "stats",
        "the review's statistics: ratings, win rates, side bias, agreement"),
    Key("chat", "T", "chat", "chat", "talk to the trial under the cursor"),
    Key("arena", "A", "arena", "arena",
        "a blind arena: the trial under the cursor against the best (the best against the "
        "base)"),
    Key("tab", "1,2,3,4,5", "tab", "tab", "show that tab", "1 2 3 4 5"),
    Key("previous", "left_square_bracket", "step(-1)", "prev", "the previous trial"),
    Key("next", "right_square_bracket", "step(1)", "next", "the next trial"),
    Key("x_axis", "X", "x_axis", "x axis", "the curves' x axis: step, epoch, tokens"),
    Key("log_y", "L", "log_y", "log y", "a log y axis, for losses that span decades"),
    Key("parameter", "p", "param", "parameter",
        "the next parameter on the objective-vs-parameter plot"),
    Key("method", "m", "method", "evaluator",
        "another importance evaluator: fANOVA, PED-ANOVA, mean decrease impurity"),
    # where you type
    Key("query", "ctrl+l", "focus_query", "query", "to the query box"),
    Key("results", "ctrl+t", "focus_results", "results", "to the results table"),
    Key("regenerate", "ctrl+r", "regenerate", "again", "write the last reply again"),
    Key("new", "ctrl+n", "new", "new",
        "start anew: the chat forgets the conversation, the arena draws its sides again"),
    # voting
    Key("a_better", "a", "vote('a')", "A better", "A is better"),
    Key("b_better", "b", "vote('b')", "B better", "B is better"),
    Key("tie", "t", "vote('tie')", "tie", "a tie: as good as each other"),
    Key("both_bad", "x", "vote('both_bad')", "both bad", "both are bad"),
    Key("both_good", "w", "vote('both_good')", "both good",
        "both are good (both win): a tie for the ratings, two good answers for a kto stage"),
    Key("skip", "s", "vote('skip')", "skip", "skip: no verdict"),
    Key("undo", "u", "undo", "undo", "take back the last vote"),
    Key("reveal", "r", "reveal", "reveal",
        "which model wrote A and which B, once you have voted (in the arena this ends its "
        "votes)"),
    Key("comment", "C", "comment", "comment", "a comment on the last vote"),
)

BY_NAME = {k.name: k for k in KEYS}

# The keys of each screen. A "+" before a name shows it in that screen's footer, the others
# are in the help dialog (at 80 columns a footer holds about eight words); a "~" marks a key
# the screen's text box handles itself (Enter in a query box): listed, not bound.
SCREENS: dict[str, tuple[str, ...]] = {
    "app": ("palette", "help", "sql", "back", "quit"),
    "tables and text": ("down", "up", "left", "right", "top", "bottom", "page_down", "page_up"),
    "experiments": ("+enter", "reload", "+sql", "+help", "+back"),
    "trials": ("+enter", "+select", "+compare", "+sort", "+filter", "copy", "+vote",
               "new_review", "statistics", "chat", "arena", "reload", "+back", "+help"),
    "trial": ("+x_axis", "log_y", "tab", "+previous", "+next", "reload", "+back", "+help"),
    "compare": ("+x_axis", "+parameter", "+method", "tab", "+back", "+help"),
    "SQL": ("~enter", "+query", "+results", "copy", "+back", "+help"),
    "help": ("+back",),
    # s (skip) and r (reveal) are said on the line above the prompt, which leaves the footer
    # room for w at 80 columns
    "review": ("+a_better", "+b_better", "+tie", "+both_bad", "+both_good", "skip", "+undo",
               "reveal",
               "comment", "statistics", "+back", "+help"),
    "new review": ("~enter", "+back"),
    "statistics": ("+reload", "+back", "+help"),
    "chat": ("~enter", "+back", "+regenerate", "+new", "+help"),
    # the arena's line above its message box spells the verdicts out while a turn waits
    "arena": ("+enter", "a_better", "b_better", "tie", "both_bad", "both_good", "skip", "+undo",
              "+reveal",
              "+new", "+back", "+help"),
}

# The footer's word where a key's action has a name of its own on a screen
LABELS = {("chat", "back"): "stop / back", ("arena", "back"): "stop / back",
          ("review", "back"): "done", ("new review", "back"): "cancel", ("help", "back"): "close",
          ("SQL", "enter"): "run", ("chat", "enter"): "send", ("arena", "enter"): "write",
          ("new review", "enter"): "create"}


# The screens where a text box usually has the focus
TYPING = {"chat", "SQL"}

# What a key does on one screen, where the table's sentence is general (Enter)
SAID = {("experiments", "enter"): "open the experiment's trials",
        ("trials", "enter"): "open the trial under the cursor",
        ("SQL", "enter"): "run the query; ↑ ↓ walk the history",
        ("chat", "enter"): "send the message",
        ("arena", "enter"): "send the message; once you have voted, open the box for the next",
        ("new review", "enter"): "make the review (in any box)"}


def does(screen: str, key: Key) -> str:
    return SAID.get((screen, key.name), key.does)


def names(screen: str) -> list[str]:
    return [n.lstrip("+~") for n in SCREENS[screen]]


def rows(screen: str) -> list[Key]:
    return [BY_NAME[n] for n in names(screen)]


def label(screen: str, key: Key) -> str:
    return LABELS.get((screen, key.name), key.label)


def bindings(screen: str, **actions: str) -> list[BindingType]:
    """The Textual bindings of a screen (or of "app", "tables and text"), from the table.
    `actions` names a screen's own method where it is not the table's (back="leave"): the key
    still does what the table says."""
    found: list[BindingType] = []
    for entry in SCREENS[screen]:
        key = BY_NAME[entry.lstrip("+~")]
        if key.builtin or entry.startswith("~"):
            continue
        keys = key.keys.split(",")
        if key.name == "tab":  # one action per tab: tab(1), tab(2)…
            found += [Binding(k, f"tab({k})", key.label, show=False) for k in keys]
            continue
        action = actions.get(key.name, key.action)
        # the footer shows the first key (f1 for help where a text box has the focus: there
        # ? is a letter); the others work as well
        shown = keys[-1] if key.name == "help" and screen in TYPING else keys[0]
        for k in keys:
            found.append(Binding(k, action, label(screen, key),
                                 show=entry.startswith("+") and k == shown,
                                 key_display=SHOWN.get(k),
                                 priority=key.name == "quit"))  # even from a text box
    return found


def where(key: Key) -> str:
    """The screens a key works on, in words."""
    if key.name in SCREENS["app"]:
        return "everywhere"
    found = [s for s, keys in SCREENS.items() if key.name in names(s)]
    return "every table and scrolling text" if found == ["tables and text"] else ", ".join(found)


def markdown() -> str:
    """The table of docs/tui.md: key, what it does, where."""
    lines = ["| key | does | where |", "|---|---|---|"]
    lines += [f"| `{k.written}` | {k.does} | {where(k)} |" for k in KEYS]
    return "\n".join(lines)
