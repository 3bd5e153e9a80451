//! Accounts over sockets: a private server's password.

mod support;

use chat_proto::client::Hello;
use chat_proto::{ClientMsg, ErrorCode, ServerMsg};
use support::{Client, TestServer, bounded, test_config};

#[tokio::test]
async fn a_private_server_needs_its_password_and_the_connection_may_retry() {
    bounded(30, async {
        let mut config = test_config();
        config.server_password = Some("open sesame".into());
        let server = TestServer::start(config).await;
        let mut c = Client::connect(server.addr).await;
        for given in [None, Some("open sesam")] {
            c.send(ClientMsg::Hello(Hello {
                name: "alice".into(),
                server_password: given.map(str::to_owned),
                ..Hello::default()
            }))
            .await;
            let err = c.expect_error(ErrorCode::AuthFailed).await;
            assert!(!err.message.contains("sesam"));
        }
        c.send(ClientMsg::Hello(Hello {
            name: "alice".into(),
            server_password: Some("open sesame".into()),
            ..Hello::default()
        }))
        .await;
        assert!(matches!(c.recv().await, ServerMsg::Welcome(_)));
        server.stop().await;
    })
    .await;
}
