"""Training loops: CryoGEN (Algorithm 1) and its IsoNet-style baseline; checkpoints; schedules."""
