// `serverless package` builds offline. With a layer in serverless.yml (the renderers' layer), the
// framework also asks CloudFormation for the deployed stack, to reuse a layer zip uploaded before;
// that only matters to a deploy, and needs AWS credentials. For `package` alone, this skips it.
class OfflineLayers {
  constructor(serverless) {
    const commands = (serverless.processedInput && serverless.processedInput.commands) || [];
    if (commands[0] !== 'package') return;
    this.hooks = {
      'before:package:compileLayers': () => {
        for (const plugin of serverless.pluginManager.plugins) {
          if (plugin.constructor.name === 'AwsCompileLayers') plugin.compareWithLastLayer = async () => undefined;
        }
      },
    };
  }
}

module.exports = OfflineLayers;
