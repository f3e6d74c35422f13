from camgate_conformance.pytest_plugin import ConformanceSuite


class TestExamplecam(ConformanceSuite):
    adapter = "examplecam"
