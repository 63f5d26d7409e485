"""The abstract state machines virtio-oracle's implementation must refine.

Rules: pure Python, no bytes of any ring, no addresses, no imports from `impl` except
the spec vocabulary (`impl.spec`). Each module states the meaning of one concept and
cites the spec sections it captures.

Spec: VIRTIO 1.4 CS01; see each module.
"""
