// The portal's labels in Chinese (the seeds' language) and English; switchable, the
// choice kept in localStorage.
import { ref } from 'vue'

const messages = {
  zh: {
    title: '镜像管理', official: '官方镜像', custom: '自定义镜像', search: '搜索镜像名称',
    framework: '框架', cuda: 'CUDA', python: 'Python', chip: '芯片类型', scope: '适用范围',
    sort: '排序', use: '使用', copy: '复制拉取地址', copied: '已复制', details: '详情',
    import: '导入镜像', build: '构建镜像', myBuilds: '我的构建', admin: '管理', signOut: '退出',
    signIn: '登录', token: '访问令牌', tokenHint: '粘贴 Bearer 令牌（berth token --sub NAME --role user）',
    demoSignIn: '以演示用户登录', source: '镜像源', registry: '源仓库', start: '开始', retry: '重试',
    close: '关闭', progress: '进度', layers: '镜像层', status: '状态', versions: '版本',
    platforms: '平台', digest: '摘要', pullRef: '拉取地址', size: '大小', name: '名称',
    description: '描述', baseImage: '基础镜像', mode: '构建方式', modeDockerfile: 'Dockerfile 构建',
    modePackages: '基于现有镜像', modeEnvironment: '从环境保存', pip: 'pip 包（每行一个）',
    apt: 'apt 包（每行一个）', environmentId: '环境 ID', submit: '提交', log: '日志',
    edit: '编辑', delete: '删除', confirmDelete: '确定删除镜像 {name}？', save: '保存', cancel: '取消',
    publish: '发布状态', registries: '源仓库管理', host: '主机', username: '用户名', password: '密码',
    add: '添加', all: '全部', empty: '没有镜像', newVersion: '新版本标签', addVersion: '添加版本',
    sortId: '默认', sortName: '名称', sortSize: '大小', sortCreated: '创建时间', asc: '升序', desc: '降序',
    noLayers: 'Harbor 复制中（暂无分层进度）', total: '共 {n} 个', expired: '请重新登录',
    online: '上线', offline: '下线', pending: '待审核', user: '用户',
  },
  en: {
    title: 'Images', official: 'Official', custom: 'Custom', search: 'Search image names',
    framework: 'Framework', cuda: 'CUDA', python: 'Python', chip: 'Chip type', scope: 'Scope',
    sort: 'Sort', use: 'Use', copy: 'Copy pull reference', copied: 'Copied', details: 'Details',
    import: 'Import image', build: 'Build image', myBuilds: 'My builds', admin: 'Admin', signOut: 'Sign out',
    signIn: 'Sign in', token: 'Access token', tokenHint: 'Paste a bearer token (berth token --sub NAME --role user)',
    demoSignIn: 'Sign in as the demo user', source: 'Source', registry: 'Source registry', start: 'Start', retry: 'Retry',
    close: 'Close', progress: 'Progress', layers: 'Layers', status: 'Status', versions: 'Versions',
    platforms: 'Platforms', digest: 'Digest', pullRef: 'Pull reference', size: 'Size', name: 'Name',
    description: 'Description', baseImage: 'Base image', mode: 'Mode', modeDockerfile: 'Dockerfile',
    modePackages: 'From an image + packages', modeEnvironment: 'Save an environment', pip: 'pip packages (one a line)',
    apt: 'apt packages (one a line)', environmentId: 'Environment id', submit: 'Submit', log: 'Log',
    edit: 'Edit', delete: 'Delete', confirmDelete: 'Delete image {name}?', save: 'Save', cancel: 'Cancel',
    publish: 'Publication', registries: 'Source registries', host: 'Host', username: 'Username', password: 'Password',
    add: 'Add', all: 'All', empty: 'No images', newVersion: 'New version tag', addVersion: 'Add version',
    sortId: 'Default', sortName: 'Name', sortSize: 'Size', sortCreated: 'Created', asc: 'Ascending', desc: 'Descending',
    noLayers: 'Harbor is replicating (no per-layer progress yet)', total: '{n} in all', expired: 'Please sign in again',
    online: 'online', offline: 'offline', pending: 'pending', user: 'User',
  },
}

export const locale = ref(localStorage.getItem('berth.locale') || 'zh')

export function setLocale(l) {
  locale.value = l
  localStorage.setItem('berth.locale', l)
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en'
}

export function t(key, vars = {}) {
  const text = messages[locale.value][key] ?? key
  return text.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '')
}
