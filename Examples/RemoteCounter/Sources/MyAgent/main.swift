import Shared
import YonderAgent

try await Agent.serve(functions: [Add.self], objects: [Counter.self])
