"""Chart-reading accuracy: a seeded chart suite, answer keys, scoring and its statistics.

Which model reads the user's figures best (issue 24).

One floor above :mod:`kanoa_desktop.core.ask`, beside the batch: it may use ask, history,
inputs, config and endpoint, never the batch, the benchmark, the window or the command line.

- :mod:`.suite`: the seeded, versioned chart suite (matplotlib, deterministic PNG bytes);
- :mod:`.keys`: answer keys for the user's own figures (a CSV);
- :mod:`.extract`: reading ``ANSWER: <value>`` and judging it (tolerance rules);
- :mod:`.stats`: Wilson intervals and McNemar's exact test;
- :mod:`.question`: the one adapter from an item to the question path;
- :mod:`.run`: the concurrent, resumable run with its events and summaries;
- :mod:`.report`: JSON, terminal, Markdown, HTML and CSV, safe for text from outside.
"""
