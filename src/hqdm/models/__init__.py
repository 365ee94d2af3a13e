"""hqdm.models"""
