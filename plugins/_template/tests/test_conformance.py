from camgate_conformance.pytest_plugin import ConformanceSuite


class TestConformance(ConformanceSuite):
    adapter = "examplecam"
