"""spinefx.models"""
