"""Counts the lines of each class (and of `custom_vae_loss`) in the seed document.

Counted: non-blank lines that are neither comments nor docstrings, from the `class` (or `def`)
line to the end of its body. Writes tests/fixtures/seed_line_counts.json, which
tests/conciseness.rs compares with the Rust ports.

    python3 python/count_seed_lines.py [path/to/custom-architectures.md]
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = ROOT.parent / "shared" / "seed" / "custom-architectures.md"


def code_blocks(markdown: str):
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def counted_lines(body: list[str]) -> int:
    count, in_doc = 0, False
    for line in body:
        text = line.strip()
        if in_doc:
            if text.endswith('"""'):
                in_doc = False
            continue
        if text.startswith('"""'):
            if not (len(text) > 3 and text.endswith('"""')):
                in_doc = True
            continue
        if text and not text.startswith("#"):
            count += 1
    return count


def definitions(block: str):
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"(class|def) (\w+)", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t", ")"))):
            j += 1
        yield m.group(2), lines[i:j]
        i = j


def main() -> None:
    seed = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SEED
    counts = {}
    for block in code_blocks(seed.read_text()):
        for name, body in definitions(block):
            if name in ("train_step",):  # a usage example, not a class to port
                continue
            counts[name] = counted_lines(body)
    out = ROOT / "tests" / "fixtures" / "seed_line_counts.json"
    out.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    for name, n in sorted(counts.items()):
        print(f"{name:28} {n:4}")


if __name__ == "__main__":
    main()
