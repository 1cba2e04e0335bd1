# Container images of the example broker and agent, one build for both:
#   docker build --target broker -t registry.example.com/brokkr-broker:0.1.0 .
#   docker build --target agent  -t registry.example.com/brokkr-agent:0.1.0 .
# The runtime is distroless (no shell, no package manager) and runs as the nonroot user
# (65532), matching the manifests' securityContext.
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK on purpose; Kubernetes probes /livez and /readyz (deploy/).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The broker with the Postgres store, the agent with the kube probe and applier.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --features postgres,webhooks,client,k8s --example broker --example agent \
    && mkdir -p /out \
    && cp target/release/examples/broker target/release/examples/agent /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS broker
COPY --from=build /out/broker /usr/local/bin/brokkr-broker
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/brokkr-broker"]

FROM gcr.io/distroless/cc-debian12:nonroot AS agent
COPY --from=build /out/agent /usr/local/bin/brokkr-agent
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/brokkr-agent"]
