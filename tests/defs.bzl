"""pytest_test: a py_test that runs one pytest file, the same as `pytest FILE`."""

def pytest_test(name, deps = [], data = [], size = "small", **kwargs):
    """Runs tests/<name>.py under pytest as a Bazel test.

    Args:
      name: test name; the source file is <name>.py in this package.
      deps: py_library targets the test imports.
      data: runtime files (e.g. "//:testdata").
      size: Bazel test size.
      **kwargs: passed to py_test.
    """
    native.py_test(
        name = name,
        srcs = [name + ".py", "pytest_runner.py"],
        main = "pytest_runner.py",
        args = [native.package_name() + "/" + name + ".py"],
        data = data + native.glob(["conftest.py"]),
        # conftest.py imports it.
        deps = deps + ["//hand25d:legacy_keras"],
        size = size,
        python_version = "PY3",
        **kwargs
    )
