"""hqdm.diffusion"""
