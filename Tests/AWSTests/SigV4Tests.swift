import Foundation
import Testing
import TestSupport
import YonderAWS

/// The Swift signer against botocore's, which signs the same requests at the same instant
/// with the same keys (Tests/AWSTests/botocore_sigv4.py).
@Suite struct SigV4Tests {
    static let instant = Date(timeIntervalSince1970: 1_440_938_160)  // 2015-08-30T12:36:00Z
    static let timestamp = "20150830T123600Z"

    static let requests: [SigV4Signer.Request] = [
        // EC2's Query API as GET: parameters in the query string, given out of order.
        .init(
            method: "GET", url: URL(string: "https://ec2.us-east-1.amazonaws.com/")!,
            query: [("Version", "2016-11-15"), ("Action", "DescribeInstances"), ("Filter.1.Name", "tag:yonder-cluster"),
                    ("Filter.1.Value.1", "train")]),
        // The same as a POST with a form body, as the SDKs send it.
        .init(
            method: "POST", url: URL(string: "https://ec2.eu-west-1.amazonaws.com/")!,
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: Array("Action=RunInstances&Version=2016-11-15&MinCount=1&MaxCount=1&UserData=IyEvYmluL3NoCg%3D%3D".utf8)),
        // Unusual characters: spaces, plus, equals, slash, star, tilde, non-ASCII; a
        // repeated parameter; a header with runs of spaces; a non-default port over http,
        // as a local emulator has.
        .init(
            method: "GET", url: URL(string: "http://127.0.0.1:5000/")!,
            query: [("Value", "a b+c=d/e*f~g"), ("Name", "tëst ☃"), ("Value", "0"), ("Empty", "")],
            headers: [("X-Custom", "  spaced    out   value "), ("x-amz-target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")]),
        // ECR's JSON API: a POST with a JSON body.
        .init(
            method: "POST", url: URL(string: "https://api.ecr.us-east-1.amazonaws.com/")!,
            headers: [("Content-Type", "application/x-amz-json-1.1"),
                      ("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")],
            body: Array(#"{"registryIds":["123456789012"]}"#.utf8)),
    ]

    /// What botocore makes of `requests`, or nil (with a recorded issue under CI) when it is
    /// not installed.
    static func botocore(_ credentials: AWSCredentials, region: String, service: String) throws -> [[String: String]]? {
        let script = RepositoryPaths.root.appendingPathComponent("Tests/AWSTests/botocore_sigv4.py")
        var input: [String: Any] = [
            "region": region, "service": service, "timestamp": timestamp,
            "credentials": ["accessKeyID": credentials.accessKeyID, "secretAccessKey": credentials.secretAccessKey]
                .merging(credentials.sessionToken.map { ["sessionToken": $0] } ?? [:]) { $1 },
        ]
        input["requests"] = requests.map { request -> [String: Any] in
            [
                "method": request.method, "url": request.url.absoluteString,
                "query": request.query.map { [$0.name, $0.value] },
                "headers": request.headers.map { [$0.name, $0.value] },
                "body": Data(request.body).base64EncodedString(),
            ]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: input))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            if errors.contains("No module named 'botocore'") {
                if runningUnderCI { Issue.record("botocore is missing; scripts/setup.sh installs it (pip install botocore)") }
                else { print("SigV4Tests: skipped, botocore is not installed (pip install botocore)") }
                return nil
            }
            Issue.record("botocore_sigv4.py failed: \(errors)")
            return nil
        }
        return try JSONSerialization.jsonObject(with: output) as? [[String: String]]
    }

    @Test(arguments: [
        AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        AWSCredentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "s3cr3t/with+slash=", sessionToken: "FQoGZXIvYXdzEJr//////////wEaDM+token=="),
    ])
    func matchesBotocore(credentials: AWSCredentials) throws {
        for (region, service) in [("us-east-1", "ec2"), ("eu-west-1", "ecr")] {
            guard let expected = try Self.botocore(credentials, region: region, service: service) else { return }
            let signer = SigV4Signer(credentials: credentials, region: region, service: service)
            #expect(expected.count == Self.requests.count)
            for (request, want) in zip(Self.requests, expected) {
                let signed = signer.sign(request, at: Self.instant)
                #expect(signed.canonicalRequest == want["canonicalRequest"], "\(request.method) \(request.url)")
                #expect(signed.stringToSign == want["stringToSign"])
                #expect(signed.signature == want["signature"])
                #expect(signed.authorization == want["authorization"])
                #expect(signed.headers.contains { $0.name == "X-Amz-Date" && $0.value == Self.timestamp })
                #expect(signed.headers.contains { $0.name == "X-Amz-Security-Token" } == (credentials.sessionToken != nil))
            }
        }
    }

    /// AWS's own published example (the IAM ListUsers GET of the SigV4 documentation).
    @Test func matchesAWSsDocumentedExample() {
        let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "iam")
        let request = SigV4Signer.Request(
            method: "GET", url: URL(string: "https://iam.amazonaws.com/")!,
            query: [("Action", "ListUsers"), ("Version", "2010-05-08")],
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")])
        let signed = signer.sign(request, at: Self.instant)
        #expect(signed.signature == "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
        #expect(signed.authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, "))
    }
}
