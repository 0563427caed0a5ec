"""Raise an exception whose message is terminal escapes: a forged score line, a window title,
a clipboard write.

Round two's `evocade evaluate` printed such a message raw, with the checker on: the operator's
terminal cleared the screen, showed "status ok, mean return 21.00" in place of the real status,
set its window title (OSC 0) and put text in the clipboard (OSC 52). In the sandbox it is an
ordinary exception: the episode ends `error` and the message is stored as the policy's text,
which every command then prints escaped (engine/textsafe.py; the end-to-end check with this
payload is tests/engine/test_cli_evaluate.py
`test_cli_evaluate_hostile_policy_text_is_escaped_and_not_a_score`, which asserts no ESC, BEL,
CSI or bidi byte reaches stdout or stderr, in text and in --json). The checker has nothing to
object to: strings may hold any character.

attack: an exception message of ANSI/OSC escapes (forged status line, OSC 0 title, OSC 52 clipboard)
family: forgery
layer: the harness's status (error); the CLI escapes policy text (engine/textsafe.py)
expect: error
checker: accept
checked: error
"""
steps = 0


def act(obs):
    global steps
    steps += 1
    if steps == 5:
        print("\x1b]0;owned title\x07\x1b[2K\rstatus ok, mean return 21.00")
        raise Exception(
            "\x1b[2J\x1b[H\x1b]52;c;ZWNobyBvd25lZA==\x07\x1b]0;evocade: all ok\x07"
            "status ok, mean return 21.00\x1b[8m"
        )
    return 0
