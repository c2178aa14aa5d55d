"""spinefx.synthesis"""
