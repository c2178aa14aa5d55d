"""spinefx.app"""
