"""spinefx.preprocessing"""
