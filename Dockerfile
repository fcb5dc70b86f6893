# Confidential Data Hub (TypeScript).
#   docker build -t confidential-data-hub .
#   buildah bud --format docker -t confidential-data-hub .     # or: podman build --format docker ...
#   docker run -d --stop-timeout 15 -v /run/confidential-containers:/run/confidential-containers \
#     -v /etc/confidential-data-hub:/etc/confidential-data-hub:ro \
#     confidential-data-hub -c /etc/confidential-data-hub/cdh.toml
# buildah and podman write OCI images by default, and the OCI image format has no HEALTHCHECK:
# without --format docker they drop it (with a warning).
#
# The build stage compiles with the dev dependencies (`npm run build`: tsc, the descriptor set,
# then the bundles, dist/bundle/<program>.js, esbuild) and packs the package; the runtime stage
# installs that tarball with exactly the production dependencies package-lock.json pins
# (deploy/install-locked.sh: `npm ci --omit=dev` in the unpacked package), the layout and tree the
# CI's image check requires. The programs the image runs are the bundles: package.json "bin"
# points confidential-data-hub, cdh-tool, secret, api-server-rest and cdh-oneshot at
# dist/bundle/, so the entrypoint and the HEALTHCHECK load one self-contained file each and
# nothing from node_modules (test/integration/package-install.test.ts installs the same tarball
# the same way and checks, with NODE_DEBUG=module, that the daemon loads no file but its bundle
# through start-up, reflection and an unseal, and that it serves with node_modules moved away).
# Only cdh-emulator, a development stand-in, runs dist/src on node_modules.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && mkdir /pkg \
 && npm pack --ignore-scripts --pack-destination /pkg \
 && cp package-lock.json deploy/install-locked.sh deploy/prime-code-cache.sh /pkg/

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
COPY --from=build /pkg/ /tmp/pkg/
# No install scripts run (no production dependency needs one); the package managers are
# removed afterwards: nothing in the image can install or build anything. V8's code cache of
# each bundle is made here, by this image's own node (deploy/prime-code-cache.sh): the daemon
# then compiles nothing of its bundle at start (its "serving" log line says code_cache "used").
RUN sh /tmp/pkg/install-locked.sh /tmp/pkg/confidential-data-hub-*.tgz /tmp/pkg/package-lock.json /usr/local \
 && sh /tmp/pkg/prime-code-cache.sh /usr/local/lib/node_modules/confidential-data-hub/dist/bundle \
 && rm -rf /tmp/pkg /root/.npm \
    /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
    /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
    /opt/yarn-v* /usr/local/bin/yarn /usr/local/bin/yarnpkg \
 && test "$(readlink -f /usr/local/bin/confidential-data-hub)" = \
      /usr/local/lib/node_modules/confidential-data-hub/dist/bundle/confidential-data-hub.js \
 && test "$(readlink -f /usr/local/bin/cdh-tool)" = \
      /usr/local/lib/node_modules/confidential-data-hub/dist/bundle/cdh-tool.js \
 && confidential-data-hub --version

# Runs as root: a non-root user is not possible here, because the daemon creates and owns its
# socket and the provisioned credential files under /run/confidential-containers, a directory
# shared with the attestation agent and the kata-agent, which are root.
VOLUME /run/confidential-containers

# The daemon writes the address it serves on into this file once serving (removed on stop), and
# cdh-tool without --socket reads it: the HEALTHCHECK follows -c, --socket and the config file.
ENV CDH_ADDRESS_FILE=/run/confidential-data-hub/address
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["cdh-tool", "--timeout-ms", "4000", "health"]

# SIGTERM: stop accepting, finish the calls in flight (at most 10 s), remove the socket, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["confidential-data-hub"]
