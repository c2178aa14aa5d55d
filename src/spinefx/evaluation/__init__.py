"""spinefx.evaluation"""
