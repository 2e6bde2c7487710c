#!/usr/bin/env python3
"""Replaces what lies between `<!-- NAME: begin -->` and `<!-- NAME: end -->`
in DOC with the contents of FILE: how the benchmark scripts keep their
tables in docs/BENCHMARKS.md current.

    scripts/write-block.py docs/BENCHMARKS.md bench.sh /tmp/table.md
"""
import sys

doc, name, new = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
text = open(doc).read()
if begin not in text or end not in text:
    sys.exit(f"{doc} has no {begin} ... {end} block")
head, rest = text.split(begin)
_, tail = rest.split(end)
open(doc, "w").write(f"{head}{begin}\n{new}\n{end}{tail}")
