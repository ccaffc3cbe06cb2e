// The agent of the quick start: Yonder's built-ins plus the shared module's types.
import QuickStartShared
import YonderAgent

await Agent.serve(functions: [Add.self, Greet.self], objects: [Counter.self])
