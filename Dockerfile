FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
EXPOSE 8080
# Migrations first (idempotent), then the service.
CMD ["sh", "-c", "node dist/src/cli/migrate.js && node dist/src/main.js"]
