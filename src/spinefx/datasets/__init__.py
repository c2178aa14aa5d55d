"""spinefx.datasets"""
