// The default agent: Yonder's built-in functions only.
import YonderAgent

await Agent.serve(functions: [], objects: [])
