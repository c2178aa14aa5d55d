"""spinefx.interpretation"""
