"""hqdm.quantum"""
