"""spinefx.release: building what ships with spinefx (the default weights), from every stage.

It sits after interpretation because a release trains (training), calibrates (evaluation),
records outputs (inference) and dissects (interpretation); see :mod:`spinefx.release.weights`.
"""
