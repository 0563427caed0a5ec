"""Put lone UTF-16 surrogates ("\ud800") in the output and in the error message.

JSON carries a lone surrogate as "\\ud800", and Python decodes it into a str that UTF-8 cannot
encode. Before the fix such a str went through the result into storage and into the feedback
for the next prompt, where the LLM client failed to encode the request: every proposal built on
that feedback failed (as an "unreadable response", retried with backoff). The harness now turns
lone surrogates into backslash escapes before the result leaves the sandbox, and the suite checks
that every result encodes as UTF-8.

attack: lone surrogates in output and error text, to break whoever encodes the result
family: forgery
layer: the harness cleans policy text to valid UTF-8 [fixed here]
expect: error
checker: accept
checked: error
"""


def act(obs):
    print("lone \ud800 surrogate \udfff")
    raise ValueError("lone \udc80 surrogate")
