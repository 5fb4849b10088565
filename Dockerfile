# daemonset-guard's image: built with the Go toolchain image, run on distroless
# static as a non-root user, with only the binary.
#   make docker-build IMG=daemonset-guard:dev
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY webhook/ webhook/
COPY certs/ certs/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/daemonset-guard ./cmd/daemonset-guard

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/daemonset-guard /daemonset-guard
USER 65532:65532
ENTRYPOINT ["/daemonset-guard"]
