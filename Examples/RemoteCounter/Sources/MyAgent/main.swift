import Shared
import YonderAgent

await Agent.serve(functions: [Add.self], objects: [Counter.self])
