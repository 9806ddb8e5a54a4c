# Cascade images, one for both programs (controller and node plugin).
#   production (the default, last stage): docker build -t cascade:0.1.0 .
#   dev (adds the nvidia-smi simulator for the dev overlay): docker build --target dev -t cascade:dev .
# The production image carries only dist/cmd, dist/pkg, the protos and the
# production dependencies: no hack/, bench/, tests or simulator.
# test/unit/image.test.ts assembles the production tree exactly as the COPY
# lines below say and runs both programs from it.
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

FROM node:20-bookworm-slim AS base
WORKDIR /app
ENV NODE_ENV=production CASCADE_LOG_FORMAT=json CASCADE_PROTO_DIR=/app/proto
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/cmd ./dist/cmd
COPY --from=build /src/dist/pkg ./dist/pkg
COPY --from=build /src/package.json ./package.json
COPY proto ./proto

FROM base AS dev
COPY --from=build /src/dist/hack ./dist/hack
COPY hack/fake-nvidia-smi/nvidia-smi ./hack/fake-nvidia-smi/nvidia-smi
USER 65532:65532
ENTRYPOINT ["node"]
CMD ["/app/dist/cmd/controller/main.js"]

FROM base AS production
# The controller runs as this user (the Deployment also says so); the node
# plugin's DaemonSet overrides it with root, which MIG management requires.
USER 65532:65532
ENTRYPOINT ["node"]
CMD ["/app/dist/cmd/controller/main.js"]
