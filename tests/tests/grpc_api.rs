//! The API port is plain gRPC that standard tools can use: grpc.health.v1 answers SERVING and server
//! reflection (v1 and v1alpha, which grpcurl relies on) lists the admin service.

use std::time::Duration;

use switchyard_e2e::Cluster;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn channel(endpoint: &str) -> tonic::transport::Channel {
    Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint URL")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the API port")
}

#[tokio::test(flavor = "multi_thread")]
async fn api_port_serves_health_and_reflection() {
    // Plaintext gRPC tools: an --insecure node.
    let cluster =
        tokio::task::spawn_blocking(|| Cluster::start_with(1, &[switchyard_e2e::INSECURE]))
            .await
            .expect("cluster start");
    let endpoint = cluster.nodes[0].endpoint();
    let ch = channel(&endpoint).await;

    let mut health = HealthClient::new(ch.clone());
    for service in ["", "switchyard.admin.v1.Admin"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health check of {service:?}: {s}"))
            .into_inner();
        assert_eq!(
            r.status,
            ServingStatus::Serving as i32,
            "health of {service:?}"
        );
    }

    // v1
    {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let mut client = ServerReflectionClient::new(ch.clone());
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .expect("reflection v1 call")
            .into_inner();
        let msg = stream
            .message()
            .await
            .expect("reflection v1 answer")
            .expect("one message");
        let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
            panic!(
                "unexpected reflection v1 answer: {:?}",
                msg.message_response
            );
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.iter().any(|n| n == "switchyard.admin.v1.Admin"),
            "reflection v1 lists {names:?}"
        );
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "reflection v1 lists {names:?}"
        );
    }

    // v1alpha
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let mut client = ServerReflectionClient::new(ch);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "switchyard.admin.v1.Admin".into(),
            )),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .expect("reflection v1alpha call")
            .into_inner();
        let msg = stream
            .message()
            .await
            .expect("reflection v1alpha answer")
            .expect("one message");
        let Some(MessageResponse::FileDescriptorResponse(fds)) = msg.message_response else {
            panic!(
                "unexpected reflection v1alpha answer: {:?}",
                msg.message_response
            );
        };
        assert!(
            !fds.file_descriptor_proto.is_empty(),
            "reflection v1alpha returned no descriptor for the admin service"
        );
    }
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("cluster shutdown");
}
