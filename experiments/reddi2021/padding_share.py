"""How much of the papers' pipeline's training targets is padding, in fedlm's build of the data.

TFF's Shakespeare preprocessing (``data.pipeline=paper``) turns each snippet into its UTF-8 bytes
between ``bos`` and ``eos``, pads that with zeros to a multiple of ``seq_len + 1`` and cuts it into
chunks of ``seq_len + 1``; a chunk gives ``seq_len`` inputs and targets. The paper's training loss
(through TFF) averages over every target, padding included; fedlm's over the others (see
``paper.yaml``, differences). This counts, per split, the share of targets that are padding and the
snippets that end in a chunk ``[eos, pad x seq_len]`` (all of its targets padding).

    uv run python experiments/reddi2021/padding_share.py [--seq-len 80]
"""

from __future__ import annotations

import argparse

from fedlm.data.clients import default_cache_dir, read_snippets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=80)
    p.add_argument("--cache-dir", default=str(default_cache_dir()))
    args = p.parse_args()
    chunk = args.seq_len + 1
    for split in ("train", "test"):
        snippets = [s for client in read_snippets(args.cache_dir, split).values() for s in client]
        tokens = [len(s.encode("utf-8")) + 2 for s in snippets]  # bytes, bos, eos
        padding = [-t % chunk for t in tokens]
        chunks = sum(t + p for t, p in zip(tokens, padding, strict=True)) // chunk
        # Of a chunk's seq_len targets (its last seq_len ids), the padding ones are the padding.
        share = sum(padding) / (chunks * args.seq_len)
        alone = sum(1 for t in tokens if t % chunk == 1)
        print(
            f"{split}: {len(snippets):,} snippets, {chunks:,} chunks of {chunk}; "
            f"{share:.1%} of targets are padding; "
            f"{alone} snippets end in [eos, pad x {args.seq_len}]"
        )


if __name__ == "__main__":
    main()
