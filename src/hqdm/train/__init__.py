"""hqdm.train"""
