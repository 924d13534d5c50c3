import os

# scikit-learn's array-API estimator checks run only when SciPy was imported
# with its array-API support on; it must be set before anything imports SciPy.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
