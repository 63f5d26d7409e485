"""Z3 proofs about the code that runs, and CrossHair contracts on the pure functions.

Rules:
- Every obligation is about named `impl` functions. Where an `impl` function is pure
  arithmetic it is evaluated on Z3 terms directly (`impl.ring_math`, `impl.layout`);
  where it reads guest memory, the obligation uses an encoding kept beside the proof and
  `tests/test_proof_encodings.py` checks the encoding against the code on concrete inputs.
- Every obligation takes the functions it is about as parameters (defaulting to the
  real ones), so `tests/test_proof_mutants.py` can hand it a broken function and see a
  counterexample: a proof that cannot fail proves nothing.
- Building an obligation's list (`registry.all_obligations()`) runs no solver.

Spec: §2.7 (split virtqueues); each obligation cites its own sections and ids.
"""
