"""hqdm.metrics"""
