# Cascade image: one image for both programs (controller and node plugin).
# Build: docker build -t cascade:dev .
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY cmd ./cmd
COPY pkg ./pkg
COPY hack ./hack
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production CASCADE_LOG_FORMAT=json CASCADE_PROTO_DIR=/app/proto
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/package.json ./package.json
COPY proto ./proto
COPY hack/fake-nvidia-smi/nvidia-smi ./hack/fake-nvidia-smi/nvidia-smi
# The controller runs as this user (the Deployment also says so); the node
# plugin's DaemonSet overrides it with root, which MIG management requires.
USER 65532:65532
ENTRYPOINT ["node"]
CMD ["/app/dist/cmd/controller/main.js"]
