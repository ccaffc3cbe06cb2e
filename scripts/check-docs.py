#!/usr/bin/env python3
"""Checks that every public declaration of the library modules a user imports has a doc
comment (`///` just above it, past its attributes). Prints each one that has none and exits
1 if any. Run by the tests; `swift package generate-documentation --target NAME --analyze`
(scripts/docs.sh) checks the comments' parameters."""
import pathlib, re, sys

MODULES = ["Sources/Yonder", "Sources/YonderCore", "Sources/YonderCluster", "Sources/YonderProtocol", "Agent/YonderAgent"]
DECLARATION = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:public|open)\s+(?:(?:static|final|mutating|nonisolated|override|convenience|required|indirect|private\(set\)|distributed)\s+)*"
                         r"(?:func|var|let|init|struct|enum|class|actor|protocol|typealias|case|subscript)\b")
# What a protocol conformance requires and the protocol documents (DocC shows its comment).
INHERITED = re.compile(
    r"^\s*public\s+(?:mutating\s+)?(?:"
    r"func\s+(?:encode\(to|hash\(into|makeAsyncIterator|log\(event"                    # Codable, Hashable, AsyncSequence, LogHandler
    r"|resolve<|assignID<|actorReady<|resignID\(|makeInvocationEncoder\(|remoteCall<|remoteCallVoid<"  # DistributedActorSystem
    r"|decodeGenericSubstitutions|decodeNextArgument|decodeErrorType|decodeReturnType"    # its invocation decoder
    r"|recordGenericSubstitution|recordArgument|recordErrorType|recordReturnType|doneRecording"  # and encoder
    r"|onReturn|onReturnVoid|onThrow)"                                                     # and result handler
    r"|var\s+(?:description|metadata|logLevel|rawValue)\b|subscript\(metadataKey"
    r"|typealias\s+(?:ActorID|InvocationEncoder|InvocationDecoder|ResultHandler|SerializationRequirement|Element)\b"
    r"|init\((?:from decoder|rawValue|nilLiteral|booleanLiteral|integerLiteral|floatLiteral|stringLiteral|arrayLiteral|dictionaryLiteral))")

missing = []
for module in MODULES:
    for path in sorted(pathlib.Path(module).rglob("*.swift")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not DECLARATION.match(line) or INHERITED.match(line):
                continue
            above = number - 1
            while above >= 0 and (lines[above].strip().startswith("@") or lines[above].strip() == ""):
                if lines[above].strip() == "":
                    above = -1
                    break
                above -= 1
            if above < 0 or not lines[above].strip().startswith("///"):
                missing.append(f"{path}:{number + 1}: {line.strip()}")
for entry in missing:
    print(f"no doc comment: {entry}")
print(f"check-docs: {len(missing)} public declarations without a doc comment")
sys.exit(1 if missing else 0)
