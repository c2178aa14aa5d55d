"""spinefx.training"""
