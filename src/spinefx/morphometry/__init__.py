"""spinefx.morphometry"""
