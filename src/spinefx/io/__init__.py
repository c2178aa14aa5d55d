"""spinefx.io"""
