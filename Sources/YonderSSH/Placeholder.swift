import CLibSSH2
// Placeholder: filled in by its own work item.
