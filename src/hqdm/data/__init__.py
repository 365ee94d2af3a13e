"""hqdm.data"""
