"""Counts the lines and the tokens of each class (and of `custom_vae_loss`) in the seed document.

Lines: non-blank lines that are neither comments nor docstrings, from the `class` (or `def`)
line to the end of its body.

Tokens (Python's `tokenize`): every NAME, NUMBER, STRING and OP token, where an operator
(`->`, `**`, `==`, `(`, `)`, ...) is one token as the tokenizer reads it, and the statement
terminators and block delimiters of Python's grammar, NEWLINE, INDENT and DEDENT, as Rust's
`;`, `{` and `}` are counted on the Rust side. Not counted: comments, NL (a line break
inside brackets or on a blank line), ENDMARKER, and docstrings (a string literal that is a
statement on its own, with its NEWLINE).

Writes tests/fixtures/seed_line_counts.json (`{"lines": {...}, "tokens": {...}}`), which
tests/conciseness.rs compares with the Rust ports.

    python3 python/count_seed_lines.py [path/to/custom-architectures.md]
"""

import io
import json
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEED = ROOT.parent / "shared" / "seed" / "custom-architectures.md"

NOT_COUNTED = {tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER}


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


def counted_tokens(body: list[str]) -> int:
    source = io.StringIO("\n".join(body) + "\n")
    tokens = list(tokenize.generate_tokens(source.readline))
    count, docstring = 0, False
    for i, tok in enumerate(tokens):
        if tok.type in NOT_COUNTED:
            continue
        if docstring and tok.type == tokenize.NEWLINE:
            docstring = False
            continue  # the docstring's statement end
        if tok.type == tokenize.STRING:
            before = next((t for t in reversed(tokens[:i]) if t.type not in NOT_COUNTED), None)
            after = tokens[i + 1] if i + 1 < len(tokens) else None
            starts = before is None or before.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
            if starts and after is not None and after.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                docstring = True
                continue
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
    lines, tokens = {}, {}
    for block in code_blocks(seed.read_text()):
        for name, body in definitions(block):
            if name in ("train_step",):  # a usage example, not a class to port
                continue
            lines[name] = counted_lines(body)
            tokens[name] = counted_tokens(body)
    out = ROOT / "tests" / "fixtures" / "seed_line_counts.json"
    out.write_text(json.dumps({"lines": lines, "tokens": tokens}, indent=2, sort_keys=True) + "\n")
    for name in sorted(lines):
        print(f"{name:28} {lines[name]:4} lines {tokens[name]:5} tokens")
    print(f"{'total':28} {sum(lines.values()):4} lines {sum(tokens.values()):5} tokens")


if __name__ == "__main__":
    main()
