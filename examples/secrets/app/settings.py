import os

DB_PASSWORD = "q7Vx2LpR9mWz4KtB8nYc"
API_KEY = os.environ["API_KEY"]
DEBUG = False
