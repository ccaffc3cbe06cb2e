// The agent the tests call: the built-ins plus the test fixtures.
import TestFixtures
import YonderAgent

await Agent.serve(functions: fixtureFunctions, objects: fixtureObjects)
