"""keywords/enrolled"""
