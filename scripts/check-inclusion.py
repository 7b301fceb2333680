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

leaf = base64.b64decode(sys.argv[1])
proof = json.load(open(sys.argv[2]))
origin, size, root_b64 = open(sys.argv[3]).read().split("\n")[:3]
if int(size) != proof["size"]:
    sys.exit(f"checkpoint size {size} != proof size {proof['size']}")
got = root_from_inclusion(proof["index"], proof["size"], leaf,
                          [base64.b64decode(h) for h in proof["proof"]])
if got != base64.b64decode(root_b64):
    sys.exit("FAIL: the proof does not lead to the checkpoint's root")
print(f"OK: entry {proof['index']} is in {origin} at size {size} (root {root_b64})")
