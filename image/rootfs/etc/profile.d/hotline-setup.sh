# shellcheck shell=sh
# hotline on the appliance: `hotline` uses the configuration that hotline.service reads, and the
# wizard starts at root's login on a terminal until setup is complete, that is until the
# configuration names a domain (the image ships it with none).
alias hotline='/usr/bin/hotline --config /etc/hotline/hotline.toml'
if [ "$(id -u)" = 0 ] && [ -t 0 ] && [ -t 1 ] &&
    ! grep -Eq '^[[:space:]]*domain[[:space:]]*=[[:space:]]*"[^"]' /etc/hotline/hotline.toml 2>/dev/null; then
    echo "Welcome to hotline. Setup is not complete yet: starting the wizard (\`hotline setup\`)."
    /usr/bin/hotline --config /etc/hotline/hotline.toml setup ||
        echo "Setup did not finish: run \`hotline setup\` to start it again."
fi
