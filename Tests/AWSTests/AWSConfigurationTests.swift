import Foundation
import Testing
import YonderAWS

/// Credentials, region and endpoints found as the AWS CLI finds them, from an environment
/// and a home folder made for each test.
@Suite struct AWSConfigurationTests {
    /// A home folder with `.aws/credentials` and `.aws/config` holding `credentials` and `config`.
    static func home(credentials: String? = nil, config: String? = nil) throws -> String {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-aws-\(UUID().uuidString)")
        let aws = home.appendingPathComponent(".aws")
        try FileManager.default.createDirectory(at: aws, withIntermediateDirectories: true)
        if let credentials { try credentials.write(to: aws.appendingPathComponent("credentials"), atomically: true, encoding: .utf8) }
        if let config { try config.write(to: aws.appendingPathComponent("config"), atomically: true, encoding: .utf8) }
        return home.path
    }

    static let credentialsFile = """
        # a comment
        [default]
        aws_access_key_id = AKIADEFAULT
        aws_secret_access_key = default/secret

        [work]
        aws_access_key_id=AKIAWORK
        aws_secret_access_key=work+secret
        aws_session_token = token==
        """

    static let configFile = """
        [default]
        region = eu-central-1
        [profile work]
        region = ap-south-1
        s3 =
          max_concurrent_requests = 20
        [profile only-config]
        aws_access_key_id = AKIACONFIG
        aws_secret_access_key = config-secret
        """

    @Test func theEnvironmentComesFirst() throws {
        let home = try Self.home(credentials: Self.credentialsFile)
        let configuration = AWSConfiguration(
            environment: ["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token"],
            home: home)
        let credentials = try configuration.credentials()
        #expect(credentials == AWSCredentials(accessKeyID: "AKIAENV", secretAccessKey: "env-secret", sessionToken: "env-token", source: "environment"))
        #expect(!"\(credentials)".contains("env-secret"))
    }

    @Test func profilesComeFromTheCredentialsFileThenTheConfigFile() throws {
        let home = try Self.home(credentials: Self.credentialsFile, config: Self.configFile)
        let standard = try AWSConfiguration(environment: [:], home: home).credentials()
        #expect(standard.accessKeyID == "AKIADEFAULT" && standard.secretAccessKey == "default/secret" && standard.sessionToken == nil)
        let work = try AWSConfiguration(environment: ["AWS_PROFILE": "work"], home: home).credentials()
        #expect(work.accessKeyID == "AKIAWORK" && work.secretAccessKey == "work+secret" && work.sessionToken == "token==")
        #expect(work.source.hasSuffix(".aws/credentials [work]"))
        let configOnly = try AWSConfiguration(environment: ["AWS_PROFILE": "only-config"], home: home).credentials()
        #expect(configOnly.accessKeyID == "AKIACONFIG")
        #expect(configOnly.source.hasSuffix(".aws/config [profile only-config]"))
    }

    @Test func noCredentialsSaysWhereItLooked() throws {
        let home = try Self.home(config: Self.configFile)
        let error = #expect(throws: AWSError.self) {
            try AWSConfiguration(environment: ["AWS_PROFILE": "work", "AWS_ACCESS_KEY_ID": "AKIAHALF"], home: home).credentials()
        }
        #expect(error?.code == "NoCredentials")
        #expect(error?.message.contains("AWS_ACCESS_KEY_ID") == true)
        #expect(error?.message.contains("\(home)/.aws/credentials [work]") == true)
        #expect(error?.message.contains("\(home)/.aws/config [profile work]") == true)
    }

    @Test func theRegionComesFromTheSpecThenTheEnvironmentThenTheProfile() throws {
        let home = try Self.home(config: Self.configFile)
        #expect(try AWSConfiguration(environment: ["AWS_REGION": "us-west-2"], home: home).region("sa-east-1") == "sa-east-1")
        #expect(try AWSConfiguration(environment: ["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "x"], home: home).region() == "us-west-2")
        #expect(try AWSConfiguration(environment: ["AWS_DEFAULT_REGION": "us-east-2"], home: home).region() == "us-east-2")
        #expect(try AWSConfiguration(environment: [:], home: home).region() == "eu-central-1")
        #expect(try AWSConfiguration(environment: ["AWS_PROFILE": "work"], home: home).region() == "ap-south-1")
        #expect(try AWSConfiguration(environment: [:], home: home).region("us-gov-west-1") == "us-gov-west-1")
        let misspelt = #expect(throws: AWSError.self) { try AWSConfiguration(environment: ["AWS_REGION": "useast1"], home: home).region() }
        #expect(misspelt?.code == "UnknownRegion")
        #expect(misspelt?.message.contains("\"useast1\" (from AWS_REGION) is not an AWS region name") == true)
        let error = #expect(throws: AWSError.self) {
            try AWSConfiguration(environment: [:], home: try Self.home()).region()
        }
        #expect(error?.code == "NoRegion")
    }

    @Test func endpointsCanBeOverriddenPerServiceOrForAll() throws {
        let plain = AWSConfiguration(environment: [:], home: "/nonexistent")
        #expect(try plain.endpoint(service: "ec2", region: "us-east-1").absoluteString == "https://ec2.us-east-1.amazonaws.com")
        #expect(try plain.endpoint(service: "ecr", region: "eu-west-1").absoluteString == "https://api.ecr.eu-west-1.amazonaws.com")
        #expect(try plain.endpoint(service: "ssm", region: "cn-north-1").absoluteString == "https://ssm.cn-north-1.amazonaws.com.cn")
        let emulator = AWSConfiguration(
            environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_ECR": "http://127.0.0.1:5001"], home: "/nonexistent")
        #expect(try emulator.endpoint(service: "ec2", region: "us-east-1").absoluteString == "http://127.0.0.1:5000")
        #expect(try emulator.endpoint(service: "ecr", region: "us-east-1").absoluteString == "http://127.0.0.1:5001")
        let broken = AWSConfiguration(environment: ["AWS_ENDPOINT_URL_EC2": "ftp://nowhere"], home: "/nonexistent")
        #expect(throws: AWSError.self) { try broken.endpoint(service: "ec2", region: "us-east-1") }
    }
}
