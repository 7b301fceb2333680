#!/usr/bin/env python3
"""Checks a Vellum inclusion proof with nothing but Python's hashlib.

An independent RFC 9162 implementation, so that the README walkthrough
does not ask you to trust Vellum's own code:

    check-inclusion.py LEAF_HASH_B64 PROOF.json CHECKPOINT_FILE

PROOF.json is the body of GET /v1/proof/inclusion; the checkpoint's size
must equal the proof's size. (Checking the checkpoint's signature is the
verifier's job: see vellum-verify.)
"""
import base64, hashlib, json, sys

def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()

def root_from_inclusion(index, size, leaf, proof):
    if index >= size:
        raise ValueError("index is not below size")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1; sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1; sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r

def main(argv):
    if len(argv) != 4:
        sys.exit("usage: check-inclusion.py LEAF_HASH_B64 PROOF.json CHECKPOINT_FILE")
    try:
        leaf = base64.b64decode(argv[1], validate=True)
        proof = json.load(open(argv[2]))
        origin, size, root_b64 = open(argv[3]).read().split("\n")[:3]
        index, psize = proof["index"], proof["size"]
        hashes = [base64.b64decode(h, validate=True) for h in proof["proof"]]
        root = base64.b64decode(root_b64, validate=True)
        size = int(size)
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"FAIL: cannot read the inputs: {type(e).__name__}: {e}")
    if not isinstance(index, int) or not isinstance(psize, int):
        sys.exit("FAIL: the proof's index and size must be integers")
    if len(leaf) != 32 or len(root) != 32 or any(len(h) != 32 for h in hashes):
        sys.exit("FAIL: every hash must be 32 bytes")
    if size != psize:
        sys.exit(f"FAIL: checkpoint size {size} != proof size {psize}")
    try:
        got = root_from_inclusion(index, psize, leaf, hashes)
    except ValueError as e:
        sys.exit(f"FAIL: {e}")
    if got != root:
        sys.exit("FAIL: the proof does not lead to the checkpoint's root")
    print(f"OK: entry {index} is in {origin} at size {size} (root {root_b64})")

main(sys.argv)
